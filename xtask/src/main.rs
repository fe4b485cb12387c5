//! `cargo xtask`: project automation.

mod asan;
mod loom;
mod stress;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("usage: cargo xtask <stress|loom|asan> [args]");
        std::process::exit(2);
    };
    let result = match cmd.as_str() {
        "stress" => stress::run(&args[1..]),
        "loom" => loom::run(&args[1..]),
        "asan" => asan::run(&args[1..]),
        other => Err(format!("unknown xtask command {other:?}")),
    };
    if let Err(e) = result {
        eprintln!("xtask: {e}");
        std::process::exit(1);
    }
}
