struct IRQSourcesPlaceholder {}
