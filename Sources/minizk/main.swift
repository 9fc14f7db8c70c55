print("minizk")
