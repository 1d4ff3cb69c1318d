print("irqsim: not yet")
