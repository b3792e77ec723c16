struct Handle {
    fd: i32,
}

#[mem_isolate::isolated]
fn open_handle(
    path: &str,
) -> Handle {
    Handle { fd: path.len() as i32 }
}

fn main() {
    let _ = open_handle("x").map(|h| h.fd);
}
