use std::io::{self, Read, Write};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let n: u32 = s.trim().parse().unwrap();
    let mut out = String::new();
    for i in 1..=n {
        let line = match (i % 3, i % 5) {
            (0, 0) => "FizzBuzz".to_string(),
            (0, _) => "Fizz".to_string(),
            (_, 0) => "Buzz".to_string(),
            _ => i.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    io::stdout().write_all(out.as_bytes()).unwrap();
}
