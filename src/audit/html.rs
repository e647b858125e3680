//! Self-contained HTML pages of a user's audit and of the leavers' report: no script, no
//! external resource, one inline style sheet; a timeline a person can read at a glance, with
//! the leave and every revocation marked and the proof (`seq`, chain link, door) beside each
//! step.

use std::fmt::Write as _;

use idpsync_engine::AccessDirection;
use idpsync_engine::audit::{LeaversReport, Standing, Step, StepKind, UserAudit};

use super::duration_text;
use super::text::{admin_change_text, chain_text, door_text, standing_text, step_summary};

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

const STYLE: &str = r#"
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.meta{color:#5b6475;font-size:13px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:14px 18px;margin:12px 0}
.verdict{font-size:18px;font-weight:600}
.ok{border-left:6px solid #1f9d55}.alarm{border-left:6px solid #d42a2a;background:#fff3f3}
.leave{border-left:6px solid #e08a00}
.big{font-size:28px;font-weight:700}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e6e9ef;vertical-align:top}
th{background:#eef1f5}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;color:#3b4252;word-break:break-all}
ol.timeline{list-style:none;margin:0;padding:0 0 0 22px;border-left:3px solid #c9cfd9}
ol.timeline li{position:relative;margin:0 0 14px;padding-left:10px}
ol.timeline li:before{content:"";position:absolute;left:-32px;top:4px;width:14px;height:14px;border-radius:50%;background:#9aa3b2;border:2px solid #fff}
li.revoked:before{background:#d42a2a}li.granted:before{background:#1f9d55}
li.left:before{background:#e08a00}li.out:before{background:#e08a00;width:18px;height:18px;left:-34px}
li.out .what{color:#b35f00;font-weight:700}li.revoked .what{color:#b21f1f;font-weight:600}
.what{font-weight:500}.when{color:#5b6475;font-size:13px}.proof{font-size:12px;color:#5b6475}
.flag{color:#b21f1f;font-weight:700}
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        escape(title)
    )
}

fn step_class(kind: &StepKind) -> &'static str {
    match kind {
        StepKind::Deactivated | StepKind::Deleted => "out",
        StepKind::Left { .. } => "left",
        StepKind::Access {
            direction: AccessDirection::Revoked,
            ..
        } => "revoked",
        StepKind::Access {
            direction: AccessDirection::Granted,
            ..
        } => "granted",
        _ => "",
    }
}

fn step_item(out: &mut String, step: &Step) {
    let since = match step.kind {
        StepKind::Acknowledged { .. } => "the revocation",
        _ => "the change arrived",
    };
    let latency = step
        .latency_us
        .map(|us| format!(" · {} after {since}", duration_text(us)))
        .unwrap_or_default();
    let _ = write!(
        out,
        "<li class=\"{}\"><div class=\"what\">{}</div><div class=\"when\">{}{}</div>\
         <div class=\"proof\">seq {} · chain <code>{}</code><br>{}</div></li>",
        step_class(&step.kind),
        escape(&step_summary(&step.kind)),
        escape(&step.recorded_at.to_rfc3339()),
        escape(&latency),
        step.seq,
        step.chain,
        escape(&door_text(&step.door))
    );
}

/// A user's audit as one HTML page.
pub fn user(audit: &UserAudit) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Offboarding audit: {}</h1><div class=\"meta\">user <code>{}</code> · tenant {} · \
         now {}{} · as of seq {} · generated {}</div>",
        escape(&audit.user_name),
        audit.user,
        escape(audit.tenant.as_str()),
        standing_text(audit.standing),
        if audit.erased { " · personal fields erased" } else { "" },
        audit.head,
        escape(&audit.generated_at.to_rfc3339())
    );
    if !audit.still_holds.is_empty() {
        let _ = write!(
            body,
            "<div class=\"card alarm\"><div class=\"verdict flag\">⚠ Still holds access: {} grant(s)</div><ul>",
            audit.still_holds.len()
        );
        for held in &audit.still_holds {
            let _ = write!(
                body,
                "<li>{} ({}) via {}</li>",
                escape(&held.resource.to_string()),
                escape(held.role.as_str()),
                escape(&held.via_name)
            );
        }
        body.push_str("</ul></div>");
    }
    match &audit.leave {
        Some(leave) => {
            let gone = audit
                .time_to_revoke_us
                .map_or_else(|| "not gone".to_owned(), duration_text);
            let _ = write!(
                body,
                "<div class=\"card leave\"><div class=\"verdict\">Left: {} at {}</div>\
                 <div>by {}</div><div>access gone in <span class=\"big\">{}</span> · {} revoked</div>\
                 <div>{}</div><div class=\"proof\">seq {} · chain <code>{}</code></div></div>",
                escape(&step_summary(&leave.kind).to_lowercase()),
                escape(&leave.recorded_at.to_rfc3339()),
                escape(&door_text(&leave.door)),
                escape(&gone),
                audit.revocations().count(),
                escape(&audit.offboarding.as_ref().map(chain_text).unwrap_or_default()),
                leave.seq,
                leave.chain
            );
        }
        None => {
            let _ = write!(
                body,
                "<div class=\"card ok\"><div class=\"verdict\">{}</div></div>",
                if audit.standing == Standing::Active {
                    "Not a leaver: the user is active."
                } else {
                    "No deactivation or deletion is recorded for this user."
                }
            );
        }
    }
    body.push_str("<h2>Timeline</h2><ol class=\"timeline\">");
    for step in &audit.steps {
        step_item(&mut body, step);
    }
    body.push_str("</ol>");
    page(&format!("Offboarding audit: {}", audit.user_name), &body)
}

/// The leavers' report as one HTML page.
pub fn report(report: &LeaversReport) -> String {
    let optional = |value: Option<i64>| value.map_or_else(|| "–".to_owned(), duration_text);
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Leavers since {}</h1><div class=\"meta\">tenant {} · seq {} to {} · generated {}</div>",
        escape(&report.since.to_rfc3339()),
        escape(report.tenant.as_str()),
        report.from_seq,
        report.head,
        escape(&report.generated_at.to_rfc3339())
    );
    let class = if report.has_alarms() { "alarm" } else { "ok" };
    let _ = write!(
        body,
        "<div class=\"card {class}\"><span class=\"big\">{}</span> leavers · time to revoke: median \
         <b>{}</b>, max <b>{}</b>{}</div>",
        report.count,
        escape(&optional(report.median_time_to_revoke_us)),
        escape(&optional(report.max_time_to_revoke_us)),
        if report.still_holding > 0 {
            format!(
                "<div class=\"verdict flag\">⚠ {} leaver(s) still hold access</div>",
                report.still_holding
            )
        } else {
            String::new()
        }
    );
    if !report.unacknowledged.is_empty() {
        let _ = write!(
            body,
            "<div class=\"card alarm\"><div class=\"verdict flag\">⚠ {} leaver(s) with revocations not \
             acknowledged within {}</div><ul>",
            report.unacknowledged.len(),
            escape(&duration_text(report.ack_within_us))
        );
        for waiting in &report.unacknowledged {
            let _ = write!(
                body,
                "<li>{}: {} revocation(s) waiting since {} ({})</li>",
                escape(&waiting.user_name),
                waiting.waiting,
                escape(&waiting.revoked_at.to_rfc3339()),
                escape(&duration_text(waiting.waiting_us))
            );
        }
        body.push_str("</ul></div>");
    }
    if !report.slowest.is_empty() {
        body.push_str("<h2>Slowest offboardings</h2><ul>");
        for slow in &report.slowest {
            let _ = write!(
                body,
                "<li>{}: {}</li>",
                escape(&slow.user_name),
                escape(&chain_text(&slow.offboarding))
            );
        }
        body.push_str("</ul>");
    }
    if !report.admin_changes.is_empty() {
        body.push_str("<h2>Admin roles gained and lost</h2><ul>");
        for change in &report.admin_changes {
            let _ = write!(body, "<li>{}</li>", escape(&admin_change_text(change)));
        }
        body.push_str("</ul>");
    }
    for held in &report.held {
        let _ = write!(
            body,
            "<div class=\"card alarm\"><div class=\"verdict flag\">⚠ A sync of {} is held: {} deactivation(s), \
             {} deletion(s) wait for confirmation; those users keep their access until then</div><ul>",
            escape(&held.integration),
            held.deactivations,
            held.deletions
        );
        for change in &held.changes {
            let _ = write!(body, "<li>{}</li>", escape(change));
        }
        body.push_str("</ul></div>");
    }
    body.push_str(
        "<h2>Leavers</h2><table><tr><th>left</th><th>user</th><th>how, by</th><th>revoked</th>\
         <th>gone in</th><th>now</th><th>proof</th></tr>",
    );
    for leaver in &report.leavers {
        let now = if leaver.still_holds.is_empty() {
            escape(standing_text(leaver.standing))
        } else {
            format!(
                "<span class=\"flag\">⚠ holds {} grant(s)</span>",
                leaver.still_holds.len()
            )
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}<br><code>{}</code></td><td>{}<br>{}</td><td>{}</td><td>{}</td>\
             <td>{now}</td><td>seq {}<br><code>{}</code></td></tr>",
            escape(&leaver.left_at.to_rfc3339()),
            escape(&leaver.user_name),
            leaver.user,
            leaver.how.as_str(),
            escape(&door_text(&leaver.door)),
            leaver.revoked,
            escape(&optional(leaver.time_to_revoke_us)),
            leaver.seq,
            leaver.chain
        );
    }
    body.push_str("</table>");
    page(&format!("Leavers of {}", report.tenant), &body)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_in_names_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
