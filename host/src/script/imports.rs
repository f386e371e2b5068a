//! What a script may import: the script world and the parts of WASI that
//! give it nothing outside its own instance.
//!
//! The check runs when a script is loaded, before it is linked, because the
//! linker knows more than a script may use: it is built with the whole of
//! WASI, filesystem and sockets included, and a component that links is not
//! yet one that should run.

use wasmtime::Engine;
use wasmtime::component::Component;

use super::ScriptError;

/// Interfaces a script may import, without their `@version`. The versions
/// are left to the linker, which matches any semver-compatible one it has.
///
/// - the script world's own `status` and the `types` it uses;
/// - `wasi:cli` streams and terminals: stdin is empty, stdout and stderr
///   are captured; `environment` and `exit` are what every Rust program
///   imports, and the environment is empty;
/// - `wasi:io`, the streams and pollables those use;
/// - `wasi:clocks` and `wasi:random`, which reveal nothing about the site.
const ALLOWED: &[&str] = &[
    "scadalink:tracking/status",
    "scadalink:tracking/types",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// Refuses `component` if it imports anything outside [`ALLOWED`], naming
/// the first such import in the component's order.
pub(super) fn check(engine: &Engine, component: &Component) -> Result<(), ScriptError> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        let unversioned = name.split('@').next().unwrap_or(name);
        if !ALLOWED.contains(&unversioned) {
            return Err(ScriptError::RefusedImport {
                import: name.to_owned(),
                why: why(unversioned),
            });
        }
    }
    Ok(())
}

/// Why an import is refused, in words a script author can act on.
fn why(unversioned: &str) -> String {
    let what = match unversioned {
        "scadalink:tracking/store" => "the store's write interface",
        "scadalink:tracking/maintenance" => "the store's maintenance interface",
        "scadalink:tracking/storage" => "the SQL storage capability",
        name if name.starts_with("wasi:filesystem/") => "the filesystem",
        name if name.starts_with("wasi:sockets/") => "the network",
        name if name.starts_with("wasi:http/") => "HTTP",
        _ => "an interface outside the script world",
    };
    format!(
        "{what}; a script may import only `scadalink:tracking/status` and WASI's cli, io, clocks and random"
    )
}
