//! The embedded SQLite database (feature `sqlite`): sqlx, WAL journal, one writer connection and
//! a pool of readers, migrations embedded from `migrations/sqlite`.

mod backend;
mod config;
mod error;

pub use backend::SqliteDatabase;
pub use config::SqliteConfig;
