//! Generates a realistic, deterministic client export for the benchmarks:
//! `cargo run --release --example gen_clients -- ROWS SEED > clients.csv`
//! Accented names, quoted notes with commas and newlines, UK phones in many shapes, yes/no
//! booleans, and about 2 % bad rows (no company, bad email, bad phone, overlong code, bad flag).

use std::io::{BufWriter, Write};

/// xorshift64*: deterministic by seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Ann", "Bryn", "Zoë", "Élise", "Søren", "Niamh", "José", "Chloé", "Dev", "Grace", "Hamid",
    "Iwan", "Łukasz", "Mairéad", "Noël",
];
const LAST: &[&str] = &[
    "Smith",
    "Jones",
    "Brontë",
    "O'Neill",
    "Patel",
    "Nowak",
    "García",
    "Müller",
    "Dubois",
    "Khan",
    "Williams",
    "Ó Briain",
];
const TOWNS: &[&str] = &[
    "Whitby", "Hexham", "London", "Leeds", "York", "Bath", "Truro", "Derby", "Buxton", "Cardiff",
    "Bangor",
];
const TERRITORIES: &[&str] =
    &["UK>North", "UK>South West", "UK>Midlands", "UK>London", "UK>Wales", "UK>Scotland>Highlands"];
const KINDS: &[&str] =
    &["Bakery", "Café", "Hardware", "Farm Shop", "Hotel", "Grocers", "Outdoors", "Pharmacy"];
const BOOLS: &[&str] = &["yes", "no", "Y", "N", "true", "false", "1", "0"];
const PRICES: &[&str] = &["Retail", "Wholesale", "Retail|Wholesale", "Trade", ""];
const SEGMENTS: &[&str] = &["Gold", "Silver", "Bronze"];

fn phone(r: &mut Rng) -> String {
    let n = 900_000 + r.below(99_999);
    match r.below(6) {
        0 => format!("07700 {n}"),
        1 => format!("+44 7700 {n}"),
        2 => format!("+44 (0)7700 {n}"),
        3 => format!("0044 7700 {n}"),
        4 => format!("(01632) {}-{:03}", n / 1000, n % 1000),
        _ => format!("07700{n}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let seed: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(42);
    let mut r = Rng(seed.max(1));
    let out = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, out.lock());
    let _ = writeln!(w, "Customer ID,Company,Active,First Name,Surname,Email,Phone,Address,Town,Postcode,Territory,Notes,Price lists,Segment");
    for i in 0..rows {
        let (first, last) = (r.pick(FIRST), r.pick(LAST));
        let mut code = format!("C-{i:07}");
        let mut company = format!("{} {} {}", last, r.pick(KINDS), i % 97);
        let mut active = r.pick(BOOLS).to_string();
        let mut email = format!(
            "{}.{}{}@example.co.uk",
            first.to_lowercase(),
            last.to_lowercase().replace([' ', '\''], ""),
            i
        );
        let mut tel = phone(&mut r);
        // About 2 % bad rows, of five kinds.
        match r.below(250) {
            0 => company.clear(),
            1 => email = email.replace('@', "-at-"),
            2 => tel = "call the office".into(),
            3 => code = format!("C-{i:07}-{}", "X".repeat(50)),
            4 => active = "maybe".into(),
            _ => {}
        }
        let notes = match r.below(20) {
            0 => format!("\"Deliver to rear door, \"\"bell broken\"\"\nAsk for {first}\""),
            1 => "\"Pays by invoice, 30 days\"".to_string(),
            _ => String::new(),
        };
        let _ = writeln!(
            w,
            "{code},{company},{active},{first},{last},{email},{tel},{} High Street,{},{}{} {}AA,{},{notes},{},{}",
            1 + r.below(200),
            r.pick(TOWNS),
            ["YO", "NE", "SW", "LS", "BA", "TR"][r.below(6) as usize],
            1 + r.below(30),
            1 + r.below(9),
            r.pick(TERRITORIES),
            r.pick(PRICES),
            r.pick(SEGMENTS),
        );
    }
    let _ = w.flush();
}
