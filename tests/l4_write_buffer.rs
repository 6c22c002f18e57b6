//! The vendored pingora-core patch for the L4 write buffer (vendor/README.md):
//! the buffer is allocated by the first write that needs it and freed by the
//! flush that empties it, so an idle keep-alive connection holds none.
//!
//! pingora's public `Stream` is unbuffered until its listener or connector
//! sets buffers (`set_buffer` is crate-private), and cargo does not run a
//! patched dependency's own unit tests. So the patch's source file is
//! compiled here as it is, and its unit tests run as this test binary (they
//! need only std and tokio). The integration suite covers the listener path,
//! and bench/README.md the memory.

#[path = "../vendor/pingora-core/src/protocols/l4/lazy_write.rs"]
#[allow(dead_code)]
mod lazy_write;
