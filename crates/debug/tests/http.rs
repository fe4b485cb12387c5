//! The HTTP server on 127.0.0.1:0 in a thread, read back with a real HTTP
//! client (ureq), and the routing function on its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use unishrink_debug::http::{route, DebugServer};
use unishrink_debug::{CountTable, DebugView, ScanResult, ShrinkerEntry};
use unishrink_shrinker::{
    from_fns, Count, MemcgConfig, RegisteredShrinker, Registry, Scan, ShrinkerConfig, ShrinkerFlags,
};

/// A NUMA-aware global cache with `objects` on each node.
fn cache(reg: &Registry, objects: Arc<AtomicU64>) -> RegisteredShrinker {
    let o = objects.clone();
    reg.alloc(
        ShrinkerConfig::new("pool").flags(ShrinkerFlags::NUMA_AWARE),
        from_fns(
            move |_| Count::Objects(o.load(Ordering::Relaxed)),
            move |sc| {
                let take = sc.nr_to_scan.min(objects.load(Ordering::Relaxed));
                objects.fetch_sub(take, Ordering::Relaxed);
                Scan::Freed(take)
            },
        ),
    )
    .unwrap()
    .register()
}

fn registry() -> Registry {
    Registry::new(MemcgConfig {
        nr_nodes: 2,
        ..MemcgConfig::default()
    })
}

#[test]
fn serves_the_view_as_json_over_loopback() {
    let reg = registry();
    let root = reg.online_root().unwrap();
    let objects = Arc::new(AtomicU64::new(100));
    let s = cache(&reg, objects.clone());
    let server = DebugServer::bind(DebugView::new(reg.clone()), "127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    let stop = server.stop_handle();
    let thread = std::thread::spawn(move || server.serve(None));

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let base = format!("http://{addr}");
    let get = |path: &str| {
        let mut r = agent.get(format!("{base}{path}")).call().unwrap();
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, ctype, r.body_mut().read_to_string().unwrap())
    };

    let (status, ctype, body) = get("/shrinkers");
    assert_eq!(status, 200);
    assert_eq!(ctype.as_deref(), Some("application/json"));
    let list: Vec<ShrinkerEntry> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].dir_name, format!("pool-{}", s.id()));
    assert!(list[0].flags.numa_aware);

    let (status, _, body) = get(&format!("/shrinkers/{}/count", s.id()));
    assert_eq!(status, 200);
    let table: CountTable = serde_json::from_str(&body).unwrap();
    assert_eq!(table.rows.len(), 1);
    assert_eq!(table.rows[0].counts, vec![100, 100]);

    let (status, ctype, body) = get(&format!("/shrinkers/pool-{}/count?format=text", s.id()));
    assert_eq!(status, 200);
    assert!(ctype.unwrap().starts_with("text/plain"));
    assert_eq!(body, format!("{} 100 100\n", root.id().0));

    let mut r = agent
        .post(format!("{base}/shrinkers/{}/scan", s.id()))
        .send(format!("{} 1 30\n", root.id().0))
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let done: ScanResult = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!((done.nid, done.freed, done.stopped), (1, 30, false));
    assert_eq!(objects.load(Ordering::Relaxed), 70);

    let (status, _, body) = get(&format!("/shrinkers/{}", s.id()));
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["stats"]["freed"], 30);
    assert_eq!(v["stats"]["calls"], 1);

    // Errors come back as JSON with the right status.
    let mut r = agent
        .post(format!("{base}/shrinkers/{}/scan", s.id()))
        .send("0 0")
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert!(v["error"].as_str().unwrap().contains("found 2"), "{v}");
    assert_eq!(get("/shrinkers/999/count").0, 404);
    assert_eq!(get(&format!("/shrinkers/other-{}", s.id())).0, 404);
    assert_eq!(get(&format!("/shrinkers/{}/scan", s.id())).0, 405);
    assert_eq!(get("/nowhere").0, 404);
    let mut r = agent
        .post(format!("{base}/shrinkers/{}/scan", s.id()))
        .send(vec![b'1'; 5000])
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let _ = r.body_mut().read_to_string();

    let (status, _, body) = get("/memcgs");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        serde_json::json!([{ "id": root.id().0, "parent": null }])
    );

    stop.stop();
    // 12 requests were made; each was answered before its call returned.
    assert_eq!(thread.join().unwrap().unwrap(), 12);
    s.free().unwrap();
}

#[test]
fn bounded_serve_returns_after_n_requests() {
    let reg = registry();
    reg.online_root().unwrap();
    let server = DebugServer::bind(DebugView::new(reg), "127.0.0.1:0").unwrap();
    let url = format!("http://{}/shrinkers", server.local_addr());
    let thread = std::thread::spawn(move || server.serve(Some(2)));
    for _ in 0..2 {
        let body = ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert_eq!(body, "[]");
    }
    assert_eq!(thread.join().unwrap().unwrap(), 2);
}

#[test]
fn route_is_a_pure_function_of_the_request() {
    let reg = registry();
    let root = reg.online_root().unwrap();
    let s = cache(&reg, Arc::new(AtomicU64::new(0)));
    let view = DebugView::new(reg.clone());
    let r = route(
        &view,
        "GET",
        &format!("/shrinkers/{}/count?format=text", s.id()),
        "",
    );
    // Zero objects everywhere: the count file is empty, as in the kernel.
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let r = route(&view, "POST", "/shrinkers", "");
    assert_eq!(r.status, 405);
    let r = route(
        &view,
        "POST",
        &format!("/shrinkers/{}/scan", s.id()),
        "5 0 1",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("not memcg-aware"), "{}", r.body);
    let r = route(
        &view,
        "POST",
        &format!("/shrinkers/{}/scan", s.id()),
        &format!("{} 0 1", root.id().0),
    );
    assert_eq!(r.status, 200);
    assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap()["freed"], 0);
    s.free().unwrap();
}
