impl Cache {
    #[isolated]
    pub fn lookup(&self, key: &str) -> Option<String> {
        self.entries.get(key).cloned()
    }

    #[isolated]
    fn scribble(&mut self) -> usize {
        self.entries.clear();
        self.entries.len()
    }
}
