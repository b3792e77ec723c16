/// Fetches a page in a child process.
///
/// # Errors
///
/// Runs in a child process through `#[isolated]`: fails with `MemIsolateError` if the
/// child could not be started, panicked, crashed, timed out or sent no result.
pub async fn fetch(
    url: String,
) -> ::core::result::Result<
    Result<usize, String>,
    ::mem_isolate::__private::MemIsolateError,
> {
    let __isolate = ::mem_isolate::__private::Isolate::new()
        .timeout(::core::time::Duration::from_nanos(5000000000u64));
    <::mem_isolate::__private::Isolate>::execute_async(
            &__isolate,
            move || -> Result<usize, String> {
                ::mem_isolate::__private::run_async_body(move || async move {
                    let body = download(&url).await?;
                    Ok(body.len())
                })
            },
        )
        .await
}
struct Cache;
impl Cache {
    async fn warm(
        &self,
        keys: Vec<u32>,
    ) -> ::core::result::Result<u32, ::mem_isolate::__private::MemIsolateError> {
        let __isolate = ::mem_isolate::__private::Isolate::new();
        <::mem_isolate::__private::Isolate>::execute_async(
                &__isolate,
                move || -> u32 {
                    ::mem_isolate::__private::run_async_body(move || async move {
                        keys.iter().sum()
                    })
                },
            )
            .await
    }
}
