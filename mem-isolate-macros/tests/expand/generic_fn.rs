#[isolated]
pub fn summarize<T, I>(items: I) -> Vec<String>
where
    T: std::fmt::Display,
    I: IntoIterator<Item = T>,
{
    items.into_iter().map(|item| item.to_string()).collect()
}
