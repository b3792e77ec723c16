//! Prints how a panicking callable is reported; built with `panic = "abort"`.

fn main() {
    let result = mem_isolate::execute_in_isolated_process(|| -> u8 { panic!("under abort") });
    println!("{result:?}");
    let ok = mem_isolate::execute_in_isolated_process(|| 7u8);
    println!("{ok:?}");
}
