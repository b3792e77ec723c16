// Each key's duplicate check, one function per key (a check that looked at
// the wrong field would let one of these through).
#[mem_isolate::isolated(timeout = "1s", timeout = "2s")]
fn timeout_twice() -> u8 {
    1
}

#[mem_isolate::isolated(isolate = mem_isolate::Isolate::new(), isolate = mem_isolate::Isolate::new())]
fn isolate_twice() -> u8 {
    1
}

#[mem_isolate::isolated(zygote, zygote)]
fn zygote_twice() -> u8 {
    1
}

#[mem_isolate::isolated(crate = "mem_isolate", crate = "mem_isolate")]
fn crate_twice() -> u8 {
    1
}

fn main() {}
