//! `cargo xtask`: project automation.
fn main() {
    println!("xtask: nothing yet");
}
