//! Streaming from S3 keeps memory flat: a 200 MB object is read block by block while the process's
//! resident memory is sampled. Alone in its own test binary so nothing else runs beside it.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::io::Write;
use std::sync::Arc;

use common::moto::Moto;
use crm_ingest::config::CsvSettings;
use crm_ingest::csvio::BlockPool;
use crm_ingest::pipeline::Input;
use crm_ingest::source::s3::{Object, S3File};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_mb_object_streams_in_flat_memory() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket("big").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(f, "Code,Name,Note").unwrap();
        let mut i = 0u64;
        while f.get_ref().metadata().unwrap().len() < 200 << 20 {
            for _ in 0..10_000 {
                writeln!(f, "C{i},Client number {i},\"a note that makes each row about a hundred bytes long, {i}\"").unwrap();
                i += 1;
            }
            f.flush().unwrap();
        }
    }
    let size = std::fs::metadata(&path).unwrap().len();
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&path).await.unwrap();
    c.put_object().bucket("big").key("in/big.csv").body(body).send().await.unwrap();

    let object = Object {
        key: "in/big.csv".into(),
        name: "big.csv".into(),
        size,
        etag: String::new(),
        version: None,
        modified_ms: 0,
    };
    let input = Input::Remote(Arc::new(S3File { client: c.clone(), bucket: "big".into(), object }));
    let settings = CsvSettings::default();
    let before = rss_kib();
    let mut file = input.open(&settings, &|_| true).await.unwrap();
    let (mut rows, mut peak) = (0u64, before);
    // The read path the pipeline uses: blocks of rows, recycled through a pool.
    let pool = BlockPool::default();
    loop {
        let (block, status) = file.next_block(0, pool.take()).await;
        rows += block.len() as u64;
        pool.give(block);
        peak = peak.max(rss_kib());
        if !status.unwrap() {
            break;
        }
    }
    peak = peak.max(rss_kib());
    let growth_mib = (peak.saturating_sub(before)) / 1024;
    eprintln!(
        "{} MiB object, {rows} rows: RSS {} MiB before, peak {} MiB (+{growth_mib} MiB)",
        size >> 20,
        before / 1024,
        peak / 1024
    );
    assert!(rows > 2_000_000);
    assert!(
        growth_mib < 24,
        "memory grew by {growth_mib} MiB while streaming a {} MiB object",
        size >> 20
    );
}
