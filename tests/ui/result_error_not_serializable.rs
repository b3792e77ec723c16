// `anyhow::Error`, `Box<dyn Error>` and `std::io::Error` cannot cross the
// process boundary: the error names the type and points at the user's
// return type. Return `Result<T, String>` or a serde error enum instead.
#[mem_isolate::isolated]
fn read_config(path: String) -> Result<String, std::io::Error> {
    std::fs::read_to_string(path)
}

fn main() {
    let _ = read_config("x".into());
}
