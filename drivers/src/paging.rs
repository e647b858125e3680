//! Page following, whatever the IdP's pagination style (next link, `Link` header, page token,
//! checkpoint, offset, page number): [`Pager`] walks one resource's pages and decides when the
//! listing ends, fails a listing that loops or that shifted under it, and never lets it run
//! forever.

use std::collections::HashSet;

use reqwest::header::HeaderMap;

use crate::client::Run;
use crate::error::DriverError;

/// The most pages one listing follows: a bound against a server that never stops.
const PAGES_MAX: u64 = 1_000_000;

/// Follows one listing's pages, whatever its style (next link, page token, checkpoint, offset,
/// page number), and decides when it ends.
///
/// A page that brings nothing new and points back to a cursor already followed ends the
/// listing: the server is going round pages already read, and every page it can reach was.
/// A page of items all seen before that offers a *new* cursor is an error: the server repeats
/// itself yet claims there is more, so what follows cannot be known, and ending there would
/// take a listing that stopped early for the whole directory (whoever was not read would be
/// deactivated). An empty page with a new cursor is followed (Graph sends those). A cursor
/// that comes back after a page that did bring new items is a loop that skips data, and an
/// error.
pub(crate) struct Pages {
    resource: String,
    cursors: HashSet<String>,
    pages: u64,
}

impl Pages {
    pub(crate) fn new(resource: impl Into<String>) -> Pages {
        Pages {
            resource: resource.into(),
            cursors: HashSet::new(),
            pages: 0,
        }
    }

    /// The error of a listing of this resource that cannot be completed.
    fn partial(&self, reason: String) -> DriverError {
        DriverError::PartialListing {
            resource: self.resource.clone(),
            reason,
        }
    }

    /// The error of a listing of this resource that shifted while it was read.
    fn shifted(&self, reason: String) -> DriverError {
        DriverError::Shifted {
            resource: self.resource.clone(),
            reason,
        }
    }

    /// After a page with `new_items` items not seen before and the server's `next` cursor:
    /// the cursor to follow, or `None` at the end.
    pub(crate) fn follow(
        &mut self,
        next: Option<String>,
        page_items: usize,
        new_items: usize,
        run: &Run<'_>,
    ) -> Result<Option<String>, DriverError> {
        self.pages += 1;
        let Some(next) = next else {
            return Ok(None);
        };
        let repeated = !self.cursors.insert(next.clone());
        if new_items == 0 && repeated {
            run.warn(format!(
                "the listing of {} pointed back to a page already read after a page with nothing new; it ends there",
                self.resource
            ));
            return Ok(None);
        }
        if new_items == 0 && page_items > 0 {
            return Err(self.partial(format!(
                "a page of {page_items} item(s) all read before offered another page ({next:?}), so the \
                 server's listing cannot be shown complete; nothing applied, the next run retries"
            )));
        }
        if repeated {
            return Err(self.partial(format!("the server sent the page cursor {next:?} a second time")));
        }
        if self.pages >= PAGES_MAX {
            return Err(self.partial(format!("more than {PAGES_MAX} pages")));
        }
        Ok(Some(next))
    }
}

/// One page: its items, and the cursor of the next page if the server offers one.
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next: Option<String>,
}

/// How many items of the previous page an offset-paged listing reads again at the start of
/// the next: if one object before the offset is deleted between two page requests, everything
/// after it moves one place earlier, and the overlap still covers the object that moved across
/// the page boundary.
const OVERLAP: u64 = 2;

/// Walks one resource's pages: ask [`Pager::cursor`] which page to fetch (`Some(None)` for the
/// first), fetch it, hand it to [`Pager::take`] (or [`Pager::take_at`] for offset paging);
/// `None` means the listing is complete.
pub(crate) struct Pager {
    pages: Pages,
    next: Option<Option<String>>,
    /// Whether the next page starts with items the previous one already brought.
    overlapped: bool,
    /// The IdP's count of the resource when the listing started (page-number paging).
    total: Option<u64>,
}

impl Pager {
    pub(crate) fn new(resource: impl Into<String>) -> Pager {
        Pager {
            pages: Pages::new(resource),
            next: Some(None),
            overlapped: false,
            total: None,
        }
    }

    /// The cursor of the page to fetch next, or `None` when the listing is complete.
    pub(crate) fn cursor(&self) -> Option<Option<String>> {
        self.next.clone()
    }

    /// Takes a fetched page: `add` gets each item and says whether it was new.
    pub(crate) fn take<T>(
        &mut self,
        page: Page<T>,
        add: &mut impl FnMut(T) -> bool,
        run: &Run<'_>,
    ) -> Result<(), DriverError> {
        let page_items = page.items.len();
        let new_items = page.items.into_iter().map(&mut *add).filter(|new| *new).count();
        self.next = self.pages.follow(page.next, page_items, new_items, run)?.map(Some);
        Ok(())
    }

    /// Takes a page of an offset-paged listing, fetched at `offset` (see [`offset_of`]) with
    /// `page_size`, and `total` if the server counts the resource. A page that is short, or
    /// reaches `total`, is the last; otherwise the next one starts [`OVERLAP`] items before
    /// this one's end. `add` gets each item and says whether it was new: the first item of an
    /// overlapping page must not be, or objects before the offset were deleted while the
    /// listing was read and some after them may have been skipped.
    pub(crate) fn take_at<T>(
        &mut self,
        offset: u64,
        items: Vec<T>,
        page_size: u64,
        total: Option<u64>,
        add: &mut impl FnMut(T) -> bool,
        run: &Run<'_>,
    ) -> Result<(), DriverError> {
        let page_items = items.len();
        let mut new_items = 0;
        for (index, item) in items.into_iter().enumerate() {
            let new = add(item);
            if index == 0 && new && self.overlapped {
                return Err(self.shifted());
            }
            new_items += usize::from(new);
        }
        if page_items == 0 && self.overlapped {
            return Err(self.shifted());
        }
        let end = offset + page_items as u64;
        let last = is_last_page(end, page_items, page_size, total);
        // A page of one item cannot overlap and still move on.
        let overlap = OVERLAP.min((page_items as u64).saturating_sub(1));
        let next = (!last).then(|| (end - overlap).to_string());
        self.overlapped = overlap > 0;
        self.next = self.pages.follow(next, page_items, new_items, run)?.map(Some);
        Ok(())
    }

    /// For page-number paging, where pages cannot overlap: checks the IdP's `total` count of
    /// the resource on every page against the first. A count that changed means objects were
    /// deleted or created while the listing was read, and pages may have shifted past one.
    pub(crate) fn check_total(&mut self, total: Option<u64>) -> Result<(), DriverError> {
        let Some(total) = total else {
            return Ok(());
        };
        match self.total {
            None => self.total = Some(total),
            Some(first) if first != total => {
                return Err(self.pages.shifted(format!(
                    "objects were deleted or created while the listing was read (the IdP counted \
                     {first}, then {total}), so an object may have been skipped"
                )));
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// The error of an overlapping page that does not start with an item already read.
    fn shifted(&self) -> DriverError {
        self.pages
            .shifted("objects were deleted while the listing was read, so an object may have been skipped".to_owned())
    }
}

/// Whether a page of `page_items` items, fetched with `page_size` and ending at item `end` of
/// the listing, is its last: it is short, or it reaches the server's `total`.
pub(crate) fn is_last_page(end: u64, page_items: usize, page_size: u64, total: Option<u64>) -> bool {
    (page_items as u64) < page_size || total.is_some_and(|total| end >= total)
}

/// The `rel="next"` target of `Link` headers (RFC 8288; Okta pages this way), if any.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("link")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|link| {
            let (target, params) = link.split_once(';')?;
            let is_next = params
                .split(';')
                .any(|param| matches!(param.trim(), "rel=\"next\"" | "rel=next"));
            is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
        })
}

/// The offset a cursor from [`Pager::take_at`] stands for (0 for the first page).
pub(crate) fn offset_of(cursor: Option<&str>) -> u64 {
    cursor.and_then(|cursor| cursor.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use reqwest::header::HeaderValue;

    use super::*;
    use crate::http::Budget;

    /// Reads `directory` by offset with pages of `size`; `between` changes it after each page.
    fn read(
        directory: &mut Vec<u32>,
        size: usize,
        mut between: impl FnMut(usize, &mut Vec<u32>),
    ) -> Result<(HashSet<u32>, usize), DriverError> {
        let budget = Budget::new(Duration::from_secs(60));
        let run = Run::new(&budget, crate::members::Selection::everything());
        let mut pager = Pager::new("users");
        let mut seen = HashSet::new();
        let mut requests = 0;
        while let Some(cursor) = pager.cursor() {
            let offset = offset_of(cursor.as_deref());
            let start = (offset as usize).min(directory.len());
            let items = directory[start..(start + size).min(directory.len())].to_vec();
            requests += 1;
            let total = Some(directory.len() as u64);
            pager.take_at(offset, items, size as u64, total, &mut |item| seen.insert(item), &run)?;
            between(requests, directory);
        }
        Ok((seen, requests))
    }

    #[test]
    fn offset_pages_overlap_by_two() {
        let mut directory: Vec<u32> = (0..1000).collect();
        let (seen, requests) = read(&mut directory, 100, |_, _| {}).unwrap();
        assert_eq!(seen.len(), 1000);
        // 100, then 98 new items a page: 11 requests where 10 is the least possible.
        assert_eq!(requests, 11);
    }

    #[test]
    fn one_deletion_between_pages_skips_nothing() {
        let mut directory: Vec<u32> = (0..250).collect();
        let (seen, _) = read(&mut directory, 100, |page, directory| {
            if page == 1 {
                directory.retain(|item| *item != 10);
            }
        })
        .unwrap();
        let expected: HashSet<u32> = (0..250).collect();
        assert_eq!(seen, expected, "10 was read before it went");
    }

    #[test]
    fn a_larger_shift_fails_the_listing() {
        let mut directory: Vec<u32> = (0..250).collect();
        let error = read(&mut directory, 100, |page, directory| {
            if page == 1 {
                directory.retain(|item| !(10..13).contains(item));
            }
        })
        .unwrap_err();
        assert!(matches!(error, DriverError::Shifted { .. }), "{error}");
        assert!(error.to_string().contains("may have been skipped"), "{error}");
    }

    /// Hardening issue, must-fix 7: a page that repeats what was read and offers a new cursor
    /// ended the listing as if it were complete, so whatever came after it went unread and
    /// would have been deactivated.
    #[test]
    fn a_page_with_nothing_new_and_a_new_cursor_fails_the_listing() {
        let budget = Budget::new(Duration::from_secs(60));
        let run = Run::new(&budget, crate::members::Selection::everything());
        let mut pager = Pager::new("users");
        let mut seen = HashSet::new();
        let mut add = |item: u32| seen.insert(item);
        let page = |items: Vec<u32>, next: &str| Page {
            items,
            next: Some(next.to_owned()),
        };
        pager.take(page(vec![1, 2], "c1"), &mut add, &run).unwrap();
        assert_eq!(pager.cursor(), Some(Some("c1".to_owned())));
        let error = pager.take(page(vec![1, 2], "c2"), &mut add, &run).unwrap_err();
        assert!(matches!(error, DriverError::PartialListing { .. }), "{error}");
        assert!(error.to_string().contains("cannot be shown complete"), "{error}");
        // Going back to a page already read after nothing new still ends the listing.
        let mut pager = Pager::new("users");
        pager.take(page(vec![3], "c1"), &mut add, &run).unwrap();
        pager.take(page(vec![3], "c1"), &mut add, &run).unwrap();
        assert_eq!(pager.cursor(), None);
    }

    #[test]
    fn a_changed_total_fails_a_page_number_listing() {
        let mut pager = Pager::new("users");
        pager.check_total(Some(250)).unwrap();
        pager.check_total(None).unwrap();
        pager.check_total(Some(250)).unwrap();
        let error = pager.check_total(Some(249)).unwrap_err();
        assert!(error.to_string().contains("counted 250, then 249"), "{error}");
    }

    #[test]
    fn link_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            "link",
            HeaderValue::from_static("<https://x.okta.com/api/v1/users?limit=2>; rel=\"self\""),
        );
        headers.append(
            "link",
            HeaderValue::from_static("<https://x.okta.com/api/v1/users?after=00u2&limit=2>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("https://x.okta.com/api/v1/users?after=00u2&limit=2")
        );
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
