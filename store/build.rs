// The migrations are embedded by sqlx::migrate!, which cannot tell cargo to rebuild
// when a migration file is added: without this, a new migration is silently left out
// of an incremental build.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
