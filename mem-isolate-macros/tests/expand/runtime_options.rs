impl Worker {
    #[isolated(timeout = deadline, memory_limit = self.memory_budget)]
    fn render(&self, deadline: Duration, page: Page) -> Vec<u8> {
        self.renderer.render(page)
    }

    #[isolated(isolate = &self.isolate, timeout = "1s")]
    fn quick(&self) -> u8 {
        self.quick_value
    }
}
