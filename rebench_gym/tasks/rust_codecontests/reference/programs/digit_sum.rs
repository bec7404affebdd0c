use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    for x in s.split_whitespace().skip(1) {
        let d: u32 = x.chars().map(|c| c.to_digit(10).unwrap()).sum();
        println!("{}", d);
    }
}
