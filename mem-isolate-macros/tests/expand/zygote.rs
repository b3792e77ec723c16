/// Counts the words of `text` longer than `min`, in a zygote worker.
#[isolated(zygote, timeout = "5s")]
pub fn count_long_words(text: &str, min: usize) -> usize {
    text.split_whitespace().filter(|w| w.len() > min).count()
}

impl Index {
    #[isolated(zygote)]
    fn lookup(&self, key: String) -> Option<u64> {
        self.entries.get(&key).copied()
    }
}

#[isolated(zygote)]
fn largest<T: Ord + Clone>(items: Vec<T>) -> Option<T> {
    items.iter().max().cloned()
}
