//! `sqlx::migrate!` embeds the migrations at compile time, and cargo does not watch the
//! directory by itself: without this, a migration added or changed since the last build would
//! be missing from an incremental build.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
