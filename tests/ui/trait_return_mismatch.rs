// The trait still says `-> String`: the error must point at the method's
// return type, not at the attribute.
trait Describe {
    fn describe(&self) -> String;
}

struct Thing;

impl Describe for Thing {
    #[mem_isolate::isolated]
    fn describe(&self) -> String {
        "thing".to_owned()
    }
}

fn main() {}
