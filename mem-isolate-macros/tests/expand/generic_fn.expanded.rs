#[allow(clippy::missing_errors_doc)]
pub fn summarize<T, I>(
    items: I,
) -> ::core::result::Result<Vec<String>, ::mem_isolate::__private::MemIsolateError>
where
    T: std::fmt::Display,
    I: IntoIterator<Item = T>,
{
    let __isolate = ::mem_isolate::__private::Isolate::new();
    <::mem_isolate::__private::Isolate>::execute(
        &__isolate,
        move || -> Vec<String> {
            items.into_iter().map(|item| item.to_string()).collect()
        },
    )
}
