fn main() {
    eprintln!("sluice-bench: not built yet");
    std::process::exit(2);
}
