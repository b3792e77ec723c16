#[mem_isolate::isolated]
async fn fetch() -> u8 {
    1
}

fn main() {
    // The stand-in signature keeps call sites free of follow-up errors.
    let _: Result<u8, mem_isolate::MemIsolateError> = fetch();
}
