//! What a misbehaving component cannot do to the store: leave a call
//! half-written, take over the host's transaction, reach another file, or
//! take the host down. The rogue component of `tests/rogue` misbehaves on
//! request; its `get-status` counts the rows it managed to write.

use tracking_host::{Error, StoreConfig, TrackingStore};
use tracking_tests::{new_id, plugin, rogue_store};

fn rows_written(store: &TrackingStore) -> u32 {
    store.get_status(&new_id()).unwrap().unwrap().retry_count
}

fn misbehave(store: &TrackingStore, how: &str) -> Result<bool, Error> {
    store.record_enqueue(&new_id(), how, None, None, None, None)
}

#[test]
fn a_trap_after_a_write_leaves_nothing_written_and_the_next_call_works() {
    let (_dir, store) = rogue_store();
    assert!(misbehave(&store, "ok").unwrap());

    let error = misbehave(&store, "trap").unwrap_err();
    let Error::Trap(message) = &error else {
        panic!("expected a trap, got {error:?}")
    };
    assert!(
        message.contains("trapping on purpose"),
        "the guest's panic is reported: {message}"
    );

    assert_eq!(
        rows_written(&store),
        1,
        "the trapped call's write was rolled back"
    );
    assert!(
        misbehave(&store, "ok").unwrap(),
        "a fresh instance serves the next call"
    );
    assert_eq!(rows_written(&store), 2);
}

#[test]
fn an_error_after_a_write_leaves_nothing_written() {
    let (_dir, store) = rogue_store();
    misbehave(&store, "ok").unwrap();
    assert!(matches!(misbehave(&store, "fail"), Err(Error::Storage(_))));
    assert_eq!(rows_written(&store), 1);
}

#[test]
fn the_component_cannot_commit_or_nest_the_hosts_transaction() {
    let (_dir, store) = rogue_store();
    // A committed call first, so that the host has run its own COMMIT: the
    // component's identical text must not reach the host's statement.
    misbehave(&store, "ok").unwrap();
    for how in ["commit", "savepoint"] {
        let error = misbehave(&store, how).unwrap_err();
        assert!(
            error.to_string().contains("not authorized"),
            "{how}: {error}"
        );
    }
    assert_eq!(
        rows_written(&store),
        1,
        "the writes before the attempts were rolled back"
    );
}

#[test]
fn the_component_cannot_attach_another_file_or_change_settings() {
    let (dir, store) = rogue_store();
    for how in ["attach", "pragma"] {
        let error = misbehave(&store, how).unwrap_err();
        assert!(
            error.to_string().contains("not authorized"),
            "{how}: {error}"
        );
    }
    assert!(!dir.path().join("elsewhere.db").exists());
    let conn = rusqlite::Connection::open(dir.path().join("tracking.db")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_component_that_allocates_without_bound_is_stopped_at_its_memory_cap() {
    let (_dir, store) = rogue_store();
    let error = misbehave(&store, "allocate").unwrap_err();
    assert!(matches!(error, Error::Trap(_)), "{error:?}");
    assert!(
        misbehave(&store, "ok").unwrap(),
        "the store serves the next call"
    );
    assert_eq!(rows_written(&store), 1);
}

#[test]
fn the_real_component_and_host_share_no_state_with_a_rogue_one() {
    // The rogue's table and the store's table can live in one file without
    // either seeing the other's rows as its own.
    let (dir, rogue) = rogue_store();
    misbehave(&rogue, "ok").unwrap();
    drop(rogue);

    let config = StoreConfig::new(dir.path().join("tracking.db")).purge(None);
    let store = TrackingStore::open(plugin(), config).unwrap();
    let id = new_id();
    assert!(
        store
            .record_enqueue(&id, "Database.CachedWrite", None, None, None, None)
            .unwrap()
    );
    assert_eq!(store.get_status(&id).unwrap().unwrap().id, id);
}
