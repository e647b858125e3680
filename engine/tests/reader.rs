//! Stretches of the log read back as events, a page at a time, with and without checking the
//! chain.

mod common;

use std::sync::Arc;

use common::{origin, provision};

use idpsync_engine::reader::EventPages;
use idpsync_engine::{Engine, EngineError, TenantSettings};
use idpsync_storage::{LogStore, MemoryStore, Seq, TenantId};

/// The `seq`s `pages` hands out, or the `seq` its error names.
async fn read_seqs(mut pages: EventPages) -> Result<Vec<u64>, Seq> {
    let mut seqs = Vec::new();
    loop {
        match pages.next_page().await {
            Ok(Some(page)) => seqs.extend(page.iter().map(|(event, _)| event.seq.0)),
            Ok(None) => return Ok(seqs),
            Err(EngineError::Corrupt { seq, .. }) => return Err(seq),
            Err(other) => panic!("not a corrupt log: {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stretch_is_read_whole_and_a_stretch_past_the_head_names_the_missing_record() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let engine = Engine::open(Arc::clone(&store), TenantSettings::default())
        .await
        .unwrap();
    let id = TenantId::default_tenant();
    let tenant = engine.require_tenant(&id).unwrap();
    for name in ["a", "b", "c", "d", "e"] {
        tenant.execute(provision(name), origin()).await.unwrap();
    }
    assert_eq!(
        read_seqs(tenant.events(Seq::ZERO..=Seq(5))).await,
        Ok(vec![1, 2, 3, 4, 5])
    );
    assert_eq!(read_seqs(tenant.events(Seq(2)..=Seq(3))).await, Ok(vec![2, 3]));
    assert_eq!(read_seqs(tenant.events(Seq(4)..=Seq(3))).await, Ok(vec![]));
    assert_eq!(read_seqs(tenant.events(Seq(4)..=Seq(7))).await, Err(Seq(6)));
    // Checked against the chain: after the anchor, which is read but not handed out.
    let chained = |anchor: u64, last: u64| EventPages::chained_after(&store, &id, Seq(anchor), Seq(last));
    assert_eq!(read_seqs(chained(0, 5)).await, Ok(vec![1, 2, 3, 4, 5]));
    assert_eq!(read_seqs(chained(2, 5)).await, Ok(vec![3, 4, 5]));
    assert_eq!(read_seqs(chained(6, 7)).await, Err(Seq(6)));
    engine.shutdown().await;
}
