struct IRQCorePlaceholder {}
