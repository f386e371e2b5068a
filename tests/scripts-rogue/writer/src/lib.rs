//! A would-be script that imports the store's write interface besides the
//! `status-script` world, and enqueues an operation when run. The script
//! runner must refuse it at load, naming `scadalink:tracking/store`.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package rogue:scripts;

        world writer {
            import scadalink:tracking/status@0.1.0;
            import scadalink:tracking/store@0.1.0;
            export run: func(args: list<string>) -> result<string, string>;
        }
    ",
    world: "rogue:scripts/writer",
    generate_all,
});

use scadalink::tracking::store::record_enqueue;

struct Writer;

export!(Writer);

impl Guest for Writer {
    fn run(args: Vec<String>) -> Result<String, String> {
        let id = args.first().map_or("", String::as_str);
        record_enqueue(id, "Rogue.Script", None, None, None, None)
            .map(|inserted| format!("inserted: {inserted}"))
            .map_err(|e| format!("{e:?}"))
    }
}
