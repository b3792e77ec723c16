use std::rc::Rc;

// An `async fn`'s arguments move to the thread that drives its body in the
// child, so they must be `Send`: the error is on the return type, with the
// other bounds of the call.
#[mem_isolate::isolated]
async fn count(items: Rc<Vec<u8>>) -> usize {
    items.len()
}

fn main() {
    let _ = count(Rc::new(vec![1]));
}
