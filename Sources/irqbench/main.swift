print("irqbench: not yet")
