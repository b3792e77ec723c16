// The stand-in emitted after an error must not need `allow(unused_variables)`:
// under `forbid` that would be a second, confusing error.
#![forbid(unused_variables, unused_mut)]

struct Counter(u32);

impl Counter {
    #[mem_isolate::isolated]
    const fn bump(mut self, mut by: u32, (a, b): (u32, u32)) -> u32 {
        by += a + b;
        self.0 + by
    }
}

fn main() {}
