//! Rust bindings of the `tracking-store` world, generated from `wit/`.

wasmtime::component::bindgen!({
    world: "tracking-store",
    path: "../wit",
});

pub(crate) use scadalink::tracking::storage;
pub(crate) use scadalink::tracking::types;
