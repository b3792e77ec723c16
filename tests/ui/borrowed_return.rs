#[mem_isolate::isolated]
fn name() -> &'static str {
    "static"
}

fn main() {}
