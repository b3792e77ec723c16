#[mem_isolate::isolated]
fn numbers() -> impl Iterator<Item = u8> {
    vec![1, 2, 3].into_iter()
}

fn main() {}
