struct Parser;

#[mem_isolate::isolated]
impl Parser {
    fn parse(&self) -> u8 {
        1
    }
}

fn main() {}
