#[mem_isolate::isolated]
#[mem_isolate::isolated(timeout = "1s")]
fn twice() -> u8 {
    1
}

fn main() {
    let _: Result<u8, mem_isolate::MemIsolateError> = twice();
}
