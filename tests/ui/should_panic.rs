// The panic happens in the child; the test itself would only get an `Err`.
#[mem_isolate::isolated]
#[test]
#[should_panic(expected = "boom")]
fn panics_in_the_child() {
    panic!("boom");
}

fn main() {}
