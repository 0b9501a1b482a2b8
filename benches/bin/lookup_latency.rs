//! `narfs-lookup-latency STORE PATHS [N]`: in-process latency, at whatever number of
//! roots STORE holds, of the two lookups a cache serves (`benches/scale.sh`): the
//! narinfo lookup by store-path hash (`Store::find_by_path_hash`, what `narfs serve`
//! does per `/<hash>.narinfo`), and decode by name (`Store::find_roots` then the whole
//! NAR decoded and checked against its NarHash, to nowhere). N (default 10,000)
//! random store paths of the file PATHS (one a line) each; prints median and p99.
//! Without the process start and HTTP that hyperfine and wrk include.

use std::time::Instant;

use narfs_store::Store;

fn percentiles(name: &str, mut us: Vec<f64>) {
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name}: median {:.1} µs, p99 {:.1} µs, max {:.1} µs ({} lookups)",
        at(0.5),
        at(0.99),
        at(1.0),
        us.len()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: narfs-lookup-latency STORE PATHS [N]");
        std::process::exit(2);
    }
    let store = Store::open(&args[1]).expect("open the store");
    let paths: Vec<String> = std::fs::read_to_string(&args[2])
        .expect("read PATHS")
        .lines()
        .map(str::to_owned)
        .collect();
    let n: usize = args.get(3).map_or(10_000, |v| v.parse().expect("N"));
    // A fixed xorshift sequence: the same paths in every run.
    let mut noise = narfs_core::noise::Noise::new(0);
    let mut pick = || &paths[(noise.next() % paths.len() as u64) as usize];
    let mut narinfo = Vec::with_capacity(n);
    let mut decode = Vec::with_capacity(n);
    let limits = narfs_decoder::Limits::default();
    for _ in 0..n {
        let path = pick();
        // `/nix/store/` then the 32-character hash part.
        let hash = &path[11..43];
        let t = Instant::now();
        let found = store.find_by_path_hash(hash).expect("lookup");
        narinfo.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(found.len(), 1, "{path} is recorded once");

        let path = pick();
        let t = Instant::now();
        let rec = store
            .find_roots(path)
            .expect("lookup")
            .pop()
            .expect("recorded");
        let expect = narfs_decoder::Expect::from_record(&rec.nar_hash, rec.nar_size).unwrap();
        let cid = rec.cid().unwrap();
        narfs_decoder::check(&store, &cid, rec.encoding, &expect, &limits).expect("decodes");
        decode.push(t.elapsed().as_secs_f64() * 1e6);
    }
    percentiles("narinfo lookup by hash", narinfo);
    percentiles("decode by name (lookup + whole NAR, checked)", decode);
}
