//! The debug view served as JSON over HTTP on loopback: a few demo caches
//! (a global one, a per-tenant NUMA-aware one) in a small memcg tree, and
//! `unishrink_debug::http::DebugServer` in front of them.
//!
//! ```text
//! cargo run --example debug_http -- [--addr 127.0.0.1:0] [--requests N]
//! curl http://ADDR/shrinkers
//! curl http://ADDR/shrinkers/1/count?format=text
//! curl -d '2 0 100' http://ADDR/shrinkers/1/scan
//! ```
//!
//! It prints the bound address, then serves until N requests were answered,
//! or (without `--requests`) until its standard input is closed, so it never
//! outlives the shell or test that started it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use unishrink_debug::http::DebugServer;
use unishrink_debug::DebugView;
use unishrink_shrinker::{
    from_fns, Count, MemcgConfig, MemcgId, RegisteredShrinker, Registry, Scan, ShrinkerConfig,
    ShrinkerFlags,
};

/// Command-line options.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    addr: String,
    requests: Option<usize>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options {
        addr: "127.0.0.1:0".into(),
        requests: None,
    };
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => opts.addr = args.next().ok_or("--addr needs a value")?,
            "--requests" => {
                let n = args.next().ok_or("--requests needs a value")?;
                opts.requests = Some(n.parse().map_err(|_| format!("bad --requests {n:?}"))?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(opts)
}

/// A cache of `objects[(memcg, nid)]` objects behind one shrinker.
fn demo_cache(
    reg: &Registry,
    name: &str,
    flags: ShrinkerFlags,
    objects: HashMap<(MemcgId, usize), u64>,
) -> RegisteredShrinker {
    let objects = Arc::new(Mutex::new(objects));
    let o = objects.clone();
    reg.alloc(
        ShrinkerConfig::new(name).flags(flags),
        from_fns(
            move |sc| match o.lock().unwrap().get(&(sc.memcg.id(), sc.nid)) {
                None | Some(0) => Count::Empty,
                Some(&n) => Count::Objects(n),
            },
            move |sc| {
                let mut m = objects.lock().unwrap();
                let have = m.entry((sc.memcg.id(), sc.nid)).or_default();
                let take = (*have).min(sc.nr_to_scan);
                *have -= take;
                Scan::Freed(take)
            },
        ),
    )
    .unwrap()
    .register()
}

/// The demo registry: root + two tenants, two nodes, two caches.
fn demo() -> (Registry, Vec<RegisteredShrinker>) {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 2,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    let tenants: Vec<_> = (0..2)
        .filter_map(|_| reg.create_memcg(&root).ok())
        .collect();
    let global = demo_cache(
        &reg,
        "inode-cache",
        ShrinkerFlags::NONE,
        HashMap::from([((root.id(), 0), 5_000)]),
    );
    let mut per_tenant = HashMap::new();
    for (i, t) in tenants.iter().enumerate() {
        per_tenant.insert((t.id(), 0), 1_000 * (i as u64 + 1));
        per_tenant.insert((t.id(), 1), 300);
    }
    let tenant = demo_cache(
        &reg,
        "tenant-pool",
        ShrinkerFlags::MEMCG_AWARE | ShrinkerFlags::NUMA_AWARE,
        per_tenant,
    );
    for t in &tenants {
        for nid in 0..2 {
            tenant.set_bit(t, nid).unwrap();
        }
    }
    (reg, vec![global, tenant])
}

fn main() {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("debug_http: {e}\nusage: debug_http [--addr ADDR] [--requests N]");
            std::process::exit(2);
        }
    };
    let (reg, shrinkers) = demo();
    let server = match DebugServer::bind(DebugView::new(reg), opts.addr.as_str()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("debug_http: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on http://{}", server.local_addr());
    if opts.requests.is_none() {
        let stop = server.stop_handle();
        std::thread::spawn(move || {
            // EOF (or an error) on stdin ends the server.
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            stop.stop();
        });
    }
    match server.serve(opts.requests) {
        Ok(n) => println!("served {n} request(s)"),
        Err(e) => {
            eprintln!("debug_http: {e}");
            std::process::exit(1);
        }
    }
    for s in shrinkers {
        s.free().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unishrink_debug::http::route;

    #[test]
    fn args() {
        assert_eq!(
            parse_args(["--requests".into(), "3".into()]).unwrap(),
            Options {
                addr: "127.0.0.1:0".into(),
                requests: Some(3)
            }
        );
        assert!(parse_args(["--requests".into(), "x".into()]).is_err());
        assert!(parse_args(["--bogus".into()]).is_err());
        assert!(parse_args(["--addr".into()]).is_err());
    }

    #[test]
    fn demo_answers_the_routes() {
        let (reg, shrinkers) = demo();
        let view = DebugView::new(reg);
        let list = route(&view, "GET", "/shrinkers", "");
        assert_eq!(list.status, 200);
        assert!(
            list.body.contains("\"dir_name\":\"tenant-pool-1\""),
            "{}",
            list.body
        );
        let count = route(&view, "GET", "/shrinkers/1/count?format=text", "");
        let expected = if cfg!(feature = "memcg") {
            "2 1000 300\n3 2000 300\n"
        } else {
            ""
        };
        assert_eq!(count.body, expected);
        for s in shrinkers {
            s.free().unwrap();
        }
    }
}
