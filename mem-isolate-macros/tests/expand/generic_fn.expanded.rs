pub fn summarize<T, I>(
    items: I,
) -> ::mem_isolate::__private::Result<
    Vec<String>,
    ::mem_isolate::__private::MemIsolateError,
>
where
    T: std::fmt::Display,
    I: IntoIterator<Item = T>,
{
    ::mem_isolate::__private::Isolate::new()
        .execute(move || -> Vec<String> {
            items.into_iter().map(|item| item.to_string()).collect()
        })
}
