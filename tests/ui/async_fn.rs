#[mem_isolate::isolated]
async fn fetch() -> u8 {
    1
}

fn main() {}
