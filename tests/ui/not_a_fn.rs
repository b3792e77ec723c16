#[mem_isolate::isolated]
struct Report {
    lines: Vec<String>,
}

fn main() {}
