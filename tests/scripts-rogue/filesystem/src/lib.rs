//! A would-be script of the `status-script` world that lists a directory,
//! so that its component imports `wasi:filesystem`. The script runner must
//! refuse it at load, naming that import.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    world: "status-script",
    path: "../../../wit",
});

struct Filesystem;

export!(Filesystem);

impl Guest for Filesystem {
    fn run(args: Vec<String>) -> Result<String, String> {
        let dir = args.first().map_or("/", String::as_str);
        let names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| format!("{dir}: {e}"))?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        Ok(names.join("\n"))
    }
}
