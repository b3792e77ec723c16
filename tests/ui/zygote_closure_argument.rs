// A closure lives in the caller's memory; the zygote's worker cannot get it.
#[mem_isolate::isolated(zygote)]
fn apply(f: impl Fn(u32) -> u32, x: u32) -> u32 {
    f(x)
}

#[mem_isolate::isolated(zygote)]
fn apply_dyn(f: &dyn Fn(u32) -> u32, x: u32) -> u32 {
    f(x)
}

fn main() {}
