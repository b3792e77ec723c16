// A borrow anywhere in the value, not only at the top.
#[mem_isolate::isolated]
fn parenthesized() -> (&'static str) {
    "x"
}

#[mem_isolate::isolated]
fn in_an_option() -> Option<&'static str> {
    None
}

#[mem_isolate::isolated]
fn in_a_tuple() -> (u8, &'static [u8]) {
    (1, b"x")
}

macro_rules! isolated_returning {
    ($name:ident -> $ret:ty) => {
        #[mem_isolate::isolated]
        fn $name() -> $ret {
            Default::default()
        }
    };
}

isolated_returning!(from_a_macro -> &'static str);

fn main() {}
