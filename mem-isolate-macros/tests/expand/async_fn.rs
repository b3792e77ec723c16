/// Fetches a page in a child process.
#[isolated(timeout = "5s")]
pub async fn fetch(url: String) -> Result<usize, String> {
    let body = download(&url).await?;
    Ok(body.len())
}

struct Cache;

impl Cache {
    #[isolated]
    async fn warm(&self, keys: Vec<u32>) -> u32 {
        keys.iter().sum()
    }
}
