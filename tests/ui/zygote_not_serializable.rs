// Each argument is sent serialized: the error points at the argument that
// is not `Serialize + DeserializeOwned`.
struct Handle {
    fd: i32,
}

#[mem_isolate::isolated(zygote)]
fn use_handle(count: u32, handle: Handle) -> i32 {
    handle.fd + count as i32
}

#[mem_isolate::isolated(zygote)]
fn make_handle(fd: i32) -> Handle {
    Handle { fd }
}

fn main() {
    let _ = make_handle(3).map(|h| h.fd);
    let _ = use_handle(1, Handle { fd: 3 });
}
