//! The reference for `plan`: the `csv` crate counting ByteRecords of the same file, the floor
//! any CSV pipeline stands on. `cargo run --release --example raw_count -- FILE`
fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    let started = std::time::Instant::now();
    let mut reader = match csv::ReaderBuilder::new().flexible(true).from_path(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {path}: {e}");
            std::process::exit(2);
        }
    };
    let mut record = csv::ByteRecord::new();
    let mut rows = 0u64;
    while reader.read_byte_record(&mut record).unwrap_or(false) {
        rows += 1;
    }
    println!("{rows} {:.3}", started.elapsed().as_secs_f64());
}
