#[mem_isolate::isolated]
fn forever() -> ! {
    loop {}
}

fn main() {
    let _: Result<(), mem_isolate::MemIsolateError> = forever();
}
