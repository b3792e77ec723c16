// A non-literal option is evaluated at run time; a wrong type is reported on
// the user's expression.
#[mem_isolate::isolated(timeout = seconds, memory_limit = "64 MiB")]
fn work(seconds: u64) -> u8 {
    let _ = seconds;
    1
}

#[mem_isolate::isolated(memory_limit = megabytes)]
fn work_too(megabytes: u32) -> u8 {
    let _ = megabytes;
    1
}

#[mem_isolate::isolated(isolate = count)]
fn with_isolate(count: u8) -> u8 {
    count
}

fn main() {}
