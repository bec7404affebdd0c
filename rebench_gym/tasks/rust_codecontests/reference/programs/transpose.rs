use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let v: Vec<i64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let (r, c) = (v[0] as usize, v[1] as usize);
    for j in 0..c {
        let row: Vec<String> = (0..r).map(|i| v[2 + i * c + j].to_string()).collect();
        println!("{}", row.join(" "));
    }
}
