//! `cargo bench`: the functions every row goes through, measured alone.

use std::borrow::Cow;
use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crm_ingest::mapping::{is_email, phone, Cells, Mapper};
use crm_ingest::schema::REPSLY_CLIENTS;
use crm_ingest::targets::Escapes;

struct Row(Vec<&'static str>);

impl Cells<'static> for Row {
    fn cell(&self, i: usize) -> Result<Cow<'static, str>, String> {
        Ok(Cow::Borrowed(self.0.get(i).copied().unwrap_or("")))
    }
}

const HEADER: &str = "Customer ID,Company,Active,First Name,Surname,Email,Phone,Address,Town,Postcode,Territory,Notes,Price lists,Segment";
const ROW: &[&str] = &[
    "C-0001234",
    " Brontë  Bakery 12 ",
    "yes",
    "Zoë",
    "Brontë",
    "zoe.bronte1234@example.co.uk",
    "+44 (0)7700 912345",
    "12 High Street",
    "Whitby",
    "YO21 3AA",
    "UK>North",
    "",
    "Retail|Wholesale",
    "Gold",
];

fn settings() -> crm_ingest::config::Settings {
    // `rate_limit` takes no `${VAR}`: scripts/bench.sh substitutes it in the text, as here.
    let text = include_str!("bench.toml").replace("${RATE}", "20/s");
    let vars = |n: &str| match n {
        "BENCH_DIR" => Some("/tmp/bench".to_string()),
        "SANDBOX_URL" => Some("http://127.0.0.1:1".to_string()),
        "OPS_LISTEN" => Some("127.0.0.1:0".to_string()),
        "RATE" => Some("20/s".to_string()),
        _ => None,
    };
    match crm_ingest::config::parse(Path::new("bench.toml"), &text, &vars) {
        Ok(s) => s,
        Err(e) => panic!("benches/bench.toml: {e}"),
    }
}

fn hot(c: &mut Criterion) {
    let settings = settings();
    let pipeline = settings.pipeline("clients").cloned().unwrap_or_else(|| panic!("no pipeline"));
    let header: Vec<String> = HEADER.split(',').map(String::from).collect();
    let mapper = match Mapper::compile(&pipeline.fields, REPSLY_CLIENTS, &header) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let target = crm_ingest::targets::build(&pipeline);
    let row = Row(ROW.to_vec());

    let mut g = c.benchmark_group("per_row");
    g.throughput(Throughput::Elements(1));
    g.bench_function("phone_e164_uk", |b| {
        b.iter(|| phone::to_e164(black_box("+44 (0)7700 912345"), phone::GB))
    });
    g.bench_function("email_check", |b| {
        b.iter(|| is_email(black_box("zoe.bronte1234@example.co.uk")))
    });
    g.bench_function("map_and_validate_row", |b| b.iter(|| mapper.map(black_box(&row))));
    let mapped = match mapper.map(&row) {
        Ok(m) => m,
        Err(f) => panic!("{f:?}"),
    };
    g.bench_function("encode_repsly_client", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            out.clear();
            target.encode(mapper.fields(), black_box(&mapped), Escapes::Possible, &mut out);
            out.len()
        })
    });
    g.finish();

    let mut csv_text = String::from(HEADER);
    csv_text.push('\n');
    for _ in 0..1000 {
        csv_text.push_str(&ROW.join(","));
        csv_text.push('\n');
    }
    let mut g = c.benchmark_group("per_1000_rows");
    g.throughput(Throughput::Bytes(csv_text.len() as u64));
    g.bench_function("csv_byte_records", |b| {
        b.iter(|| {
            let mut r = csv::ReaderBuilder::new().from_reader(csv_text.as_bytes());
            let mut rec = csv::ByteRecord::new();
            let mut n = 0;
            while r.read_byte_record(&mut rec).unwrap_or(false) {
                n += 1;
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, hot);
criterion_main!(benches);
